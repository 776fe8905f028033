"""The app: Pilot and snapshot tests on a fake engine, the worker process, following a run live."""
