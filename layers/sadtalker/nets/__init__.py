"""Our PyTorch networks, each loading an official checkpoint module strictly."""
