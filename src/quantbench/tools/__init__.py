"""The user commands around the pipeline (``quantbench COMMAND``)."""
