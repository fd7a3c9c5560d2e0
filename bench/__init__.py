"""faultloop benchmarks: each prints figures and a ratio against a reference measured in
the same run (see GUIDE section 5). Run all with ``python -m bench``."""
