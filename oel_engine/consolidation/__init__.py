"""Consolidation: on-policy context distillation of experience into LoRA weights."""
