"""Acra's data containers, byte-compatible with Acra 0.96: what a service stores in a database.

- :mod:`~keyloader.containers.acrablock`: AcraBlock, under a client's symmetric key;
- :mod:`~keyloader.containers.acrastruct`: AcraStruct, to a client's storage public key;
- :mod:`~keyloader.containers.envelope`: the ``%%%`` crypto envelope Acra services write;
- :mod:`~keyloader.containers.searchable`: the ``7F`` HMAC hash before a searchable value;
- :mod:`~keyloader.containers.poison`: poison-record payloads.

These functions take keys in hand; applications call the key-store engine instead
(``KeyManager.encrypt``/``decrypt``, docs/data.md), which picks the keys, tries the
rotated ones and wipes them. Every parser checks each length against the buffer before
slicing and fails with :class:`~keyloader.errors.IntegrityError`.
"""
