"""Partner identity (issue 11): API keys, SMART Backend Services, scopes, limits, CORS.

``keys`` makes and hashes secrets; ``scopes`` parses SMART v2 scopes and holds
the one table of what each endpoint needs; ``clients`` administers clients and
identifies a request's credential; ``smart`` serves discovery and the token
endpoint; ``http`` is the request edge (authentication, authorization, rate
limits, CORS and security headers).
"""
