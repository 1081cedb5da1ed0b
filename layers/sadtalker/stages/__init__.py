"""Stage functions, one per state of the state machine; each works over the storage interface."""
