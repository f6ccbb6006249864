"""MITRE ATT&CK reference data and id normalization."""
