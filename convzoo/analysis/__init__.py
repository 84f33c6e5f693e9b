"""The analyzer: params, MACs, shapes, receptive fields and memory of any ``nn.Module``."""
