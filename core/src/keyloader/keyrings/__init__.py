"""Acra keystore v2: signed key rings in DER (``der``, ``format``)."""
