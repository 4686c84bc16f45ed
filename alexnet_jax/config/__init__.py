"""Configs as a whole, above every package whose fields they hold: what runs recorded before a field
existed trained with (``added_fields``), the ImageNet recipes side by side (``recipes``) and
docs/configuration.md's tables (``field_tables``). No package below (model, data, train, parallel)
imports it; the fields themselves are declared in those packages' option tables."""
