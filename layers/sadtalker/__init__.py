"""sadtalker: SadTalker inference in our own code, as stages of a serverless pipeline.

No AWS imports here except in ``storage`` (the S3 adapter); nothing here knows about Lambda events.
"""

__version__ = "0.1.0"
