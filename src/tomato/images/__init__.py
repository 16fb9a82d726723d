"""Images: registry → verified content store → overlay snapshots.

Layer 2: uses only ``tomato.errors`` and the stdlib (plus the optional ``isal`` and
``zstandard`` packages, imported lazily).  Nothing is imported here, so importing
``tomato.images`` costs nothing; use the modules:

    reference    parse(text) -> Reference  (Docker's normalisation), is_image_id
    content      ContentStore(root): writer(resume=)/ingest/write/read/open/exists/delete/
                 list; ingests()/collect_ingests() (what interrupted writers left), scratch()
    manifest     parse_manifest, parse_config, select_manifest, chain_ids, Platform,
                 host_platform, parse_platform
    compression  DecompressReader (gzip/zstd/none, sniffed; hashes the diffID), Prefetch
    unpack       apply_layer(stream, dir, UnpackOptions) -> UnpackStats; HostileLayer
    snapshots    Snapshotter(root): prepare/view/commit/remove/mounts/stat/list/usage,
                 stage/commit_staged/discard, orphans/clean_orphans; Mount (type,
                 source, options, option(name), lowerdirs)
    registry     RegistryClient(domain, insecure=, credentials=): get_manifest,
                 open_blob(offset=) (resumable BlobStream), blob_exists, upload_blob,
                 put_manifest
    auth         CredentialStore(path) (docker config.json, 0600), Credentials
    pull         pull(ref, client, Stores, platform=, progress=) -> PulledImage;
                 unpack(manifest_digest, Stores) for loaded/imported images
    push         push(ref, target_digest, client, content) -> Pushed
    archive      save(content, [SaveItem], path, fmt) / load(content, path) -> [Loaded]
    importer     import_tarball(content, stream, platform=) -> manifest digest

A container's rootfs (what the engine calls, via ``tomato.engine.images``):

    mounts = prepare_rootfs(cfg, image, key=container_id)   # leases the image
    m = mounts[0]          # Mount("overlay", "overlay", (lowerdir=..., upperdir=..., workdir=...))
    m.lowerdirs, m.option("upperdir"), m.option("workdir")
    ... mount it (mount -t overlay -o ",".join(m.options) overlay ROOTFS) and run ...
    release_rootfs(cfg, container_id)                      # after unmounting
"""
