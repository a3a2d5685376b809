#!/usr/bin/env python3
"""moto_server, with one fix: the root element of CompleteMultipartUpload's answer.

moto 5.2 answers CompleteMultipartUpload with <CompleteMultipartUploadResponse>; S3 (and the
S3 API model) say <CompleteMultipartUploadResult>. boto3 does not look at the root, the Rust SDK
does, so every multipart upload against an unpatched moto fails to parse. The tests and the
backup benchmark start moto through this file; it takes moto_server's arguments.

    python3 scripts/moto-server.py -H 127.0.0.1 -p 5000
"""

from moto.core import serialize
from moto.server import main

_answer = serialize.S3Serializer._serialized_result_to_response


def _answer_with_s3_root(self, resp, result, shape, serialized_result):
    resp = _answer(self, resp, result, shape, serialized_result)
    body = resp.get("body")
    if self.operation_model.name == "CompleteMultipartUpload" and isinstance(body, str):
        resp["body"] = body.replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
    return resp


serialize.S3Serializer._serialized_result_to_response = _answer_with_s3_root

if __name__ == "__main__":
    main()
