"""The public status page (``routes``): HTML, Atom feed, summary.json and subscriptions."""
