"""Deployment: the ONNX graph, its optimised and int8 versions, inference timing (Table 3), refitting files.

See docs/deploy.md.
"""
