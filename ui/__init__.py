"""Streamlit-side helpers shared by the pages: cached resources and small rendering functions (no math here)."""
