"""drive_upload's root: the Drive filing of attachments, its backfill and the download proxy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from shared.drive.settings import DriveConfig
from shared.platform.settings import AdminAccess, Common, EnvReader, ErpNextAccess
from shared.roots.base import Root

if TYPE_CHECKING:
    from shared.drive.filing import AttachmentProxy, DriveBackfill, DriveUploader
    from shared.drive.ports import DriveFiles
    from shared.platform.runtime import Consumer


@dataclass(frozen=True, slots=True)
class Settings:
    common: Common
    erpnext: ErpNextAccess
    drive: DriveConfig
    admin: AdminAccess

    @classmethod
    def read(cls, env: EnvReader) -> Settings | None:
        """None when a section could not be read: its problems are noted in `env`."""
        common = Common.read(env)
        erpnext = ErpNextAccess.read(env, required=True)
        drive = DriveConfig.read(env)
        admin = AdminAccess.read(env)
        if erpnext is None or drive is None:
            return None
        return cls(common, erpnext, drive, admin)


class DriveUploadRoot(Root[Settings]):
    @cached_property
    def drive(self) -> DriveFiles:
        """Drive with the configured credentials; a shared drive is checked once, here, so a
        wrong id says so at start."""
        from shared.adapters.drive import GoogleDrive, drive_client, drive_credentials

        config = self.settings.drive
        service = drive_client(
            drive_credentials(config),
            endpoint=config.endpoint,
            ca_certs=config.ca_certs,
            timeout_s=config.timeout_s,
        )
        drive = GoogleDrive(service, chunk=config.chunk_bytes)
        if config.auth == "shared_drive" and config.shared_drive:
            drive.check_shared_drive(config.shared_drive)
        return drive

    @cached_property
    def uploader(self) -> DriveUploader:
        from shared.drive.filing import DriveUploader

        return DriveUploader(
            drive=self.drive,
            erp=self.erpnext,
            folders=self.stores.drive_folders,
            config=self.settings.drive,
            site=self.site,
            owner=self.owner,
            clock=self.clock,
        )

    @cached_property
    def proxy(self) -> AttachmentProxy:
        from shared.adapters.erpnext import ErpNextClient
        from shared.drive.filing import AttachmentProxy

        access = self.settings.erpnext

        def as_user(token: str) -> ErpNextClient:
            key, _, secret = token.partition(":")
            return ErpNextClient(access.url, key, secret, timeout_s=access.timeout_s)

        return AttachmentProxy(drive=self.drive, erp=self.erpnext, site=self.site, as_user=as_user)

    @cached_property
    def backfill(self) -> DriveBackfill:
        from shared.drive.filing import DriveBackfill

        return DriveBackfill(
            uploader=self.uploader, erp=self.erpnext, errors=self.stores.errors, clock=self.clock
        )

    @cached_property
    def consumer(self) -> Consumer:
        return self.consumer_of("drive_upload", self.uploader.apply)


def from_environment() -> DriveUploadRoot:
    """The root of this instance, from its environment; refuses to start on any bad setting."""
    from shared.roots import start

    return DriveUploadRoot(start("drive_upload"))
