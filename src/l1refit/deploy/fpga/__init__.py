"""The network on an FPGA: the firmware model on raw hardware integers, its hls4ml project, bit-exact emulation.

Modules: ``fixed`` (ap_fixed types, precisions), ``hardware`` (input bit widths, output units), ``firmware`` (the
folded model), ``design`` (the quantised design as JSON), ``emulate`` (vectorised, bit-exact), ``hls`` (hls4ml),
``rtl`` (da4ml estimates and Verilog). See docs/deploy.md §6.
"""
