"""KQL support: a tokenizer, the table reader, query splitting and data-source notes."""
