"""The sample web service the pipeline ships."""
