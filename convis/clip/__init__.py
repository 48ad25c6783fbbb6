"""CLIP: the one door to models (`models`, with `hub` for where weights come from), the text
forward (`text`) and the concept bank, T's text embeddings cached on disk (`bank`).

`convis.clip.models.load_model` is the only place that calls open_clip's factory.
"""
