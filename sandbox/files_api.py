"""Files v3: uploads, metadata, signed URLs, downloads, deletion."""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.requests import Request
from starlette.responses import Response

from sandbox.api_base import (
    ApiBase,
    respond,
)
from sandbox.errors import ApiError, bad_request
from sandbox.store import now_ms
from sandbox.values import iso_ms


class FilesApi(ApiBase):
    """Files v3: upload, metadata, signed URLs, download, delete."""

    def _file_json(self, row, request: Request) -> dict:
        name = f"{row.name}.{row.extension}" if row.extension else row.name
        path = f"{row.folder_path.rstrip('/')}/{name}"
        return {
            "id": str(row.id),
            "name": row.name,
            "extension": row.extension,
            "path": path,
            "size": row.size,
            "type": "OTHER",
            "access": row.access,
            "isUsableInContent": False,
            "url": str(request.url_for("file_download", file_id=str(row.id))),
            "createdAt": iso_ms(row.created_ms),
            "updatedAt": iso_ms(row.updated_ms),
            "archived": bool(row.archived),
        }

    async def upload_file(self, request: Request) -> Response:
        form = await request.form(max_part_size=64 * 1024 * 1024)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise bad_request("The multipart body needs a `file` part.")
        raw_options = form.get("options")
        try:
            options = json.loads(raw_options) if isinstance(raw_options, str) else {}
        except json.JSONDecodeError as exc:
            raise bad_request(
                '`options` must be a JSON string such as {"access": "PRIVATE"}.'
            ) from exc
        access = options.get("access")
        if access not in ("PUBLIC_INDEXABLE", "PUBLIC_NOT_INDEXABLE", "PRIVATE"):
            raise bad_request(
                "options.access is required: PUBLIC_INDEXABLE, PUBLIC_NOT_INDEXABLE or PRIVATE."
            )
        folder = form.get("folderPath") or form.get("folderId")
        if not folder:
            raise bad_request("Either folderPath or folderId is required.")
        name = str(form.get("fileName") or upload.filename or "file")
        content = await upload.read()
        with self.store.engine.begin() as conn:
            file_id = self.store.add_file(conn, name, str(folder), access, content)
            row = self.store.file_row(conn, str(file_id))
        return respond(self._file_json(row, request), 201)

    def _file_or_404(self, conn, file_id: str, with_content: bool = False):
        row = self.store.file_row(conn, file_id, with_content)
        if row is None:
            raise ApiError(404, f"File {file_id} was not found.", "OBJECT_NOT_FOUND")
        return row

    async def get_file(self, request: Request) -> Response:
        with self.store.engine.begin() as conn:
            row = self._file_or_404(conn, request.path_params["file_id"])
        return respond(self._file_json(row, request))

    async def download_file(self, request: Request) -> Response:
        with self.store.engine.begin() as conn:
            row = self._file_or_404(conn, request.path_params["file_id"], with_content=True)
        return Response(row.content, media_type="application/octet-stream")

    def _signature(self, file_id: str, expires: int) -> str:
        return hmac.new(
            self.sb.signing_key, f"{file_id}:{expires}".encode(), hashlib.sha256
        ).hexdigest()[:32]

    async def signed_url(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        with self.store.engine.begin() as conn:
            row = self._file_or_404(conn, file_id)
        expires = now_ms() + 10 * 60 * 1000
        url = request.url_for(
            "signed_download",
            portal=self.sb.name,
            file_id=file_id,
            expires=str(expires),
            signature=self._signature(file_id, expires),
        )
        return respond(
            {
                "url": str(url),
                "expiresAt": iso_ms(expires),
                "name": row.name,
                "extension": row.extension,
                "type": "OTHER",
                "size": row.size,
            }
        )

    async def signed_download(self, request: Request) -> Response:
        file_id = request.path_params["file_id"]
        expires = int(request.path_params["expires"])
        if (
            not hmac.compare_digest(
                request.path_params["signature"], self._signature(file_id, expires)
            )
            or expires < now_ms()
        ):
            return respond(
                {"status": "error", "message": "This signed URL is invalid or has expired."}, 403
            )
        with self.store.engine.begin() as conn:
            row = self.store.file_row(conn, file_id, with_content=True)
        if row is None:
            return respond({"status": "error", "message": "File not found."}, 404)
        return Response(row.content, media_type="application/octet-stream")

    async def delete_file(self, request: Request) -> Response:
        with self.store.engine.begin() as conn:
            if not self.store.delete_file(conn, request.path_params["file_id"]):
                raise ApiError(
                    404, f"File {request.path_params['file_id']} was not found.", "OBJECT_NOT_FOUND"
                )
        return Response(status_code=204)
