"""Evidence for governance: model cards, DPIAs, FRIAs, bias reports, with owners and expiry."""
