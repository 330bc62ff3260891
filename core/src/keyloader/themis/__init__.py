"""Themis primitives, byte-compatible with libthemis: the hazardous layer under Acra's formats.

- :mod:`~keyloader.themis.scell`: Secure Cell Seal with a symmetric key (key files,
  AcraBlock's cells, the data cell of an AcraStruct);
- :mod:`~keyloader.themis.keys`: Themis EC key containers (P-256 ``REC2``/``UEC2``);
- :mod:`~keyloader.themis.smessage`: Secure Message in encrypt mode (ECDH, then Secure Cell).

Applications use the key-store engine and :mod:`keyloader.containers` instead: these
functions take raw keys and leave key handling to their caller.
"""
