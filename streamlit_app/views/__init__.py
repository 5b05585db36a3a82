"""The pages of the Streamlit app (run by ``st.navigation`` in ``streamlit_app/app.py``)."""
