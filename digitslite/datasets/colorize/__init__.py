"""Colorization datasets: colour photos in, LMDBs of lightness, chroma and ab bins out.

`colour` converts and stores the colour planes, `bins` quantizes ab, `rebalance` weighs the bins;
these three import no torch and no server, so decoding and metrics elsewhere read the same facts.
"""
