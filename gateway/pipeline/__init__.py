"""Pipeline: one request through every stage, as typed values in and a typed outcome out.

No web framework is imported here or below: `gateway.api` turns a `Call` into HTTP and an
`Outcome` back into a response.
"""
