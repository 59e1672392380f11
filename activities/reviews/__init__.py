"""Post-incident reviews: the postmortem draft (``rendering``, jinja2 markdown), the calendar
invite (``calendar`` builds the .ics, ``invite`` mails it) and the activities over the
``reviews`` and ``action_items`` tables (``activity.ReviewActivities``)."""
