"""Harbor job -> IM -> LLaMA-Factory conversion."""
