"""gunicorn reads this from the working directory: plain ``gunicorn 'api:create_app()'``
then serves exactly like ``twitch-triage serve`` (gevent worker, bounded reads, JSON
logs, metrics hooks). Settings come from the ``TWITCH_TRIAGE_*`` variables; gunicorn's
own flags (``-b``, ``-w``) still override them. See api/serving/gunicorn_conf.py.
"""

from api.serving.gunicorn_conf import module_config

globals().update(module_config())
