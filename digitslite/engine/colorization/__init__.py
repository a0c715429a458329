"""Colorization's model side: decoding a net's outputs into colours, and the scores of colourised
pictures. numpy only (no torch), so the web process can re-decode a stored distribution."""
