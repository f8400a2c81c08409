"""Feature extraction, import and export: everything that turns raw or published data into a feature store (``ebmc.store``)."""
