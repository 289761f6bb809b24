from diagnoser_harness import harness

__all__ = ["harness"]
