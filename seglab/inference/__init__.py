"""Running a model on images: the inferer (whole image, sliding window, TTA), the predictor,
pseudo-labels and ONNX models."""
