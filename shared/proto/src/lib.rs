//! Generated protobuf messages, gRPC clients and servers of every KooGallery service, and the
//! encoded descriptor set that server reflection serves.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod koogallery {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("koogallery.common.v1");
        }
    }
    pub mod identity {
        pub mod v1 {
            tonic::include_proto!("koogallery.identity.v1");
        }
    }
    pub mod registration {
        pub mod v1 {
            tonic::include_proto!("koogallery.registration.v1");
        }
    }
    pub mod review {
        pub mod v1 {
            tonic::include_proto!("koogallery.review.v1");
        }
    }
    pub mod notification {
        pub mod v1 {
            tonic::include_proto!("koogallery.notification.v1");
        }
    }
}

pub use koogallery::common::v1 as common;
pub use koogallery::identity::v1 as identity;
pub use koogallery::notification::v1 as notification;
pub use koogallery::registration::v1 as registration;
pub use koogallery::review::v1 as review;

/// Every KooGallery proto file, plus google.rpc status/error_details and the google.protobuf
/// well-known types (what error details and fields refer to), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/koogallery_descriptor.bin"));
