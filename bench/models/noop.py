"""The no-op model for the Python worker benchmark: answers every input with "0" at once."""


def predict(inputs):
    return ["0"] * len(inputs)
