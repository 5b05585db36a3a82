"""Streamlit UI — talks only to the API."""
