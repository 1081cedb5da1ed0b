"""The AWS deployment of sadtalker-serverless (AWS CDK v2, Python).

Layout (one construct per component, composed by ``stack.SadTalkerStack``):

* ``config.py``                 - every tunable (memory, timeouts, concurrency, network) from CDK context
* ``components/storage.py``     - the job bucket (inbox/ work/ outputs/) and its access-log bucket
* ``components/functions.py``   - the light zip functions and the inference container functions
* ``components/finalize.py``    - the Fargate cluster, network and task definition of the Finalize state
* ``components/workflow.py``    - the state machine from statemachine/sadtalker.asl.json + its IAM
* ``components/starter.py``     - the S3-drop starter (EventBridge rule -> Lambda -> StartExecution)
* ``components/monitoring.py``  - alarms and the CloudWatch dashboard
* ``bundling.py``               - prepares the light functions' zip assets without Docker
* ``images/``                   - helper scripts baked into the container images
"""
