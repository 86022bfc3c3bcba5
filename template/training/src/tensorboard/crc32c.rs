//! CRC-32C (Castagnoli), table-driven, and the "masked" form TFRecord framing stores: a CRC of
//! data that itself holds CRCs is easy to get wrong, so the record format rotates and offsets it.

/// The reflected Castagnoli polynomial 0x1EDC6F41.
const POLYNOMIAL: u32 = 0x82F6_3B78;

/// The byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLYNOMIAL } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

const MASK_DELTA: u32 = 0xA282_EAD8;

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |crc, &byte| TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8))
}

/// The masked CRC-32C TFRecord stores: `((crc >> 15) | (crc << 17)) + 0xa282ead8`, wrapping.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask(crc32c(data))
}

/// Mask a CRC as TFRecord does.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_check_values() {
        // The standard check value (CRC catalogue, "CRC-32/ISCSI") and the RFC 3720 B.4 vectors.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn masking_rotates_right_by_15_and_adds_the_delta() {
        assert_eq!(mask(0), 0xA282_EAD8);
        assert_eq!(mask(1), (1u32 << 17).wrapping_add(0xA282_EAD8));
        // 0xE3069283 rotated right by 15 is 0x2507_C60D; plus the delta, wrapping.
        assert_eq!(mask(0xE306_9283), 0x2507_C60Du32.wrapping_add(0xA282_EAD8));
        assert_eq!(masked_crc32c(b"123456789"), mask(0xE306_9283));
    }

    #[test]
    fn masks_as_tensorboard_does() {
        // From TensorBoard's pure-Python reader (tensorboard.compat.tensorflow_stub.pywrap_tensorflow):
        // masked_crc32c(struct.pack("<Q", 0)) and masked_crc32c(b"123456789").
        assert_eq!(masked_crc32c(&0u64.to_le_bytes()), 0x0798_0329);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }
}
