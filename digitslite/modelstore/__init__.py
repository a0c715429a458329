"""The model store: DIGITS' static tree of pretrained models (master.json + info.json per entry),
with a checksum for every file. List, import (verified, resumable), publish, convolutionalize, serve.

Modules: format (the index files and checksums), client (fetching), listing, importer, legacy
(old FCN files), convolutionalize, publish, entries (writing entry folders), server, locations.
"""
