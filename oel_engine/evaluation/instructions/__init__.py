"""An offline out-of-distribution probe: does consolidation keep the model's instruction following?"""
