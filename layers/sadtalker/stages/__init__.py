"""Stage functions, one per state of the state machine; each works over the storage interface."""

# The one spelling of model-load time in every stage's ``timings`` (the ModelLoadSeconds metric reads it).
MODEL_LOAD_S = "model_load_s"
