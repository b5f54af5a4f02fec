"""The paper's metrics and tables, dimuon masses, resonance fits, turn-on curves and the figures."""
