"""The job server (``liveportrait serve``) and batches (``liveportrait batch``), locally or on Ray.

Both run jobs over the Python API (``LivePortraitPipeline``): ``jobs`` checks a job and runs it on a
loaded pipeline, ``workers`` keeps pipelines loaded (threads here, or Ray actors on a cluster), ``store``
persists the server's jobs in SQLite, ``app`` is the FastAPI application and ``batch`` the batch runner.
Importing this package loads neither torch nor FastAPI nor Ray.
"""
