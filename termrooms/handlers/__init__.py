"""
Handlers: the rules between the transport and storage (permissions, limits, sequencing,
password work). They call storage and the cluster, never the transport or the face.
"""
