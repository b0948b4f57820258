"""Smaller and faster models: export to ONNX or TorchScript, INT8 quantization, channel pruning."""
