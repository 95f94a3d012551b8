"""Model, GGUF, importance-matrix, dataset and ONNX preparation: the files the measurements read."""
