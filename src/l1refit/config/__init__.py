"""The workflow configuration: schema defaults, overlays and validation (:mod:`.loading`), configured inputs."""
