"""The figures service: the gateway beside the Ray head (`server`) and the per-job Ray actor it
feeds (`collector`). The only Ray importers of Tandem besides `tandem run`'s own figures service
(local/figures_service.py); `python -m tandem.gateway` serves it.
"""
