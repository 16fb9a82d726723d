"""Building images from a Dockerfile (`tomato build`, `POST /build`).

Layer 4, beside the engine: it calls the engine's use cases (containers for RUN,
child images and the build cache) and the images layer; nothing below imports it.
One concept a module:

    dockerfile    the text: parser directives, comments, continuations, heredocs
    instructions  each line as a typed, checked instruction (flags, exec/shell form)
    expand        Docker's variable expansion and quote removal
    stages        the stage graph: what the target needs, ARG scoping
    ignore        .dockerignore patterns, Docker's rules
    context       the build context: a directory, an archive, stdin (hostile input)
    sources       COPY's sources resolved inside a tree; wildcards; content hashes
    copying       COPY/ADD: Docker's copy rules, into a new layer's directory
    running       the containers of RUN steps (engine.service)
    imageconfig   what metadata instructions do to the config; history lines
    cachekeys     the build cache's keys (the index is engine/buildcache.py)
    executor      stage by stage, step by step, through the cache
    builder       the use case: context -> image, tagged only on success
    progress      classic (the API), plain, live and quiet output
    explain       --explain: each step's overlay mount, container and layer diff
"""
