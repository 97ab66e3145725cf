"""Default settings of the Domo connection, shared by the client and the resource.

Kept apart from ``client.py`` and ``auth.py`` (which import ``requests``) so that loading the
code location, which defines ``DomoResource`` with these defaults, imports no HTTP library.
"""

DEFAULT_API_URL = "https://api.domo.com"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_BACKOFF_FACTOR = 0.5
DEFAULT_BACKOFF_MAX = 30.0
DEFAULT_RETRY_AFTER_MAX = 300
DEFAULT_POST_ATTEMPTS = 3
# Connections kept per session; a client driving more concurrent exports gets a larger pool.
DEFAULT_POOL_SIZE = 32
