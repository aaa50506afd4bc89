/*
 * attrs.h - attribute lists, the attribute schema tables per (class, key
 * type), and the one engine that applies them to create, generate, unwrap,
 * derive, copy and set.
 *
 * The schema flags are named after the footnotes of the PKCS#11 attribute
 * tables (2.40 section 4.2, table 10): required or forbidden when the object
 * is created, generated or unwrapped; sensitive; modifiable; and the two
 * "sticky" rules of CKA_SENSITIVE (once TRUE) and CKA_EXTRACTABLE (once
 * FALSE).
 */
#ifndef NIMBUS_ATTRS_H
#define NIMBUS_ATTRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hsm/hsm.h"

/* Largest value accepted for one attribute, and attributes in a template. */
#define ATTR_VALUE_MAX HSM_ATTR_VALUE_MAX
#define ATTR_TEMPLATE_MAX HSM_TEMPLATE_MAX
/* Largest value in a serialized list: a stored secret is sealed, its value
 * plus the seal's nonce and tag (object.c checks that they fit). */
#define ATTR_STORED_SLACK 64
#define ATTR_STORED_MAX (ATTR_VALUE_MAX + ATTR_STORED_SLACK)

/* One attribute held by the core: value owned by the list. */
typedef struct {
    CK_ATTRIBUTE_TYPE type;
    uint8_t *value; /* NULL when len is 0 */
    size_t len;
} attr_t;

/* A list kept sorted by type, one entry per type. */
typedef struct {
    attr_t *v;
    size_t n;
    size_t cap;
} attr_list_t;

/* Wipes and frees every value, leaves an empty list. */
void attr_list_free(attr_list_t *l);
const attr_t *attr_list_find(const attr_list_t *l, CK_ATTRIBUTE_TYPE type);
/* The first entry of type in a caller's template, or NULL. */
const CK_ATTRIBUTE *attr_tmpl_find(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                                   CK_ATTRIBUTE_TYPE type);
/* Adds or replaces (copying the value). */
CK_RV attr_list_set(attr_list_t *l, CK_ATTRIBUTE_TYPE type, const void *value,
                    size_t len);
CK_RV attr_list_set_bool(attr_list_t *l, CK_ATTRIBUTE_TYPE type, bool v);
CK_RV attr_list_set_ulong(attr_list_t *l, CK_ATTRIBUTE_TYPE type, CK_ULONG v);
void attr_list_remove(attr_list_t *l, CK_ATTRIBUTE_TYPE type);
/* Reads a CK_BBOOL / CK_ULONG attribute; dflt when absent or malformed. */
bool attr_list_bool(const attr_list_t *l, CK_ATTRIBUTE_TYPE type, bool dflt);
CK_ULONG attr_list_ulong(const attr_list_t *l, CK_ATTRIBUTE_TYPE type,
                         CK_ULONG dflt);
CK_RV attr_list_dup(const attr_list_t *src, attr_list_t *dst);

/* Flat serialization for the store: u32 count, then per attribute
 * u64 type, u32 length, value (all big-endian). attr_list_deserialize checks
 * every length against what is left (never trusts the blob). */
CK_RV attr_list_serialize(const attr_list_t *l, uint8_t **out, size_t *len);
CK_RV attr_list_deserialize(const uint8_t *in, size_t len, attr_list_t *l);

/* What the engine is asked to do. */
typedef enum {
    ATTR_OP_CREATE = 0, /* C_CreateObject */
    ATTR_OP_GENERATE,   /* C_GenerateKey(Pair) */
    ATTR_OP_UNWRAP,     /* C_UnwrapKey */
    ATTR_OP_DERIVE,     /* C_DeriveKey */
} attr_op_t;

/*
 * Who is asking, and under which rules: footnote 10 (only the SO may set
 * CKA_TRUSTED to TRUE); key separation (config key_separation, on unless
 * separation_off: a zeroed caller gets the strict rules).
 */
typedef struct {
    bool is_so;
    bool separation_off;
} attr_caller_t;

/*
 * Builds the full attribute list of a new object from a template:
 * checks every attribute against the schema of the template's class and key
 * type (CKR_ATTRIBUTE_TYPE_INVALID for one the class does not have,
 * CKR_ATTRIBUTE_VALUE_INVALID for a bad size or value, CKR_ATTRIBUTE_READ_ONLY
 * for one that may not be given for this op, CKR_TEMPLATE_INCOMPLETE for a
 * missing required one, CKR_TEMPLATE_INCONSISTENT for one given twice with
 * different values or for values that contradict each other), then fills the
 * defaults and the attributes the token sets (CKA_LOCAL,
 * CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_KEY_GEN_MECHANISM ...).
 * For GENERATE/UNWRAP/DERIVE, cls and key_type give what the mechanism
 * makes (the template may repeat them; a different value is
 * CKR_TEMPLATE_INCONSISTENT); for CREATE pass CK_UNAVAILABLE_INFORMATION
 * and the template must carry CKA_CLASS (and CKA_KEY_TYPE for keys).
 * For GENERATE the key values are not yet there: the caller adds them with
 * attr_list_set after generating. CKA_EC_POINT given as a raw point is
 * stored as a DER OCTET STRING.
 */
CK_RV attrs_new_object(attr_op_t op, const attr_caller_t *caller,
                       CK_OBJECT_CLASS cls, CK_KEY_TYPE key_type,
                       const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                       attr_list_t *out);

/*
 * Key separation. A key is never both a wrapping key and a decryption key
 * (CKA_WRAP with CKA_DECRYPT) nor both an unwrapping key and an encryption
 * key (CKA_UNWRAP with CKA_ENCRYPT): otherwise C_WrapKey then C_Decrypt
 * under the same key returns the wrapped key in clear. Unless the caller's
 * separation_off is set, attrs_new_object and attrs_copy refuse a result
 * that has such a pair (CKR_TEMPLATE_INCONSISTENT) and attrs_set one whose
 * template turns a member of a pair TRUE while the other one is TRUE
 * (CKR_ATTRIBUTE_VALUE_INVALID). The defaults never make a pair: a secret
 * key gets CKA_WRAP / CKA_UNWRAP only when asked, and then CKA_DECRYPT /
 * CKA_ENCRYPT default to FALSE.
 *
 * attrs_separation_blocks: whether using key l for usage (CKA_WRAP or
 * CKA_UNWRAP) would break the rule because l also carries the other member
 * of the pair (a key made before the rule or while it was off).
 */
bool attrs_separation_blocks(const attr_list_t *l, CK_ATTRIBUTE_TYPE usage);

/*
 * C_CopyObject: out = src with tmpl applied. Only CKA_TOKEN, CKA_PRIVATE,
 * CKA_MODIFIABLE, CKA_DESTROYABLE and the attributes modifiable by
 * C_SetAttributeValue may appear (else CKR_ATTRIBUTE_READ_ONLY); the sticky
 * rules hold; CKA_COPYABLE FALSE on src is CKR_ACTION_PROHIBITED.
 */
CK_RV attrs_copy(const attr_caller_t *caller, const attr_list_t *src,
                 const CK_ATTRIBUTE *tmpl, CK_ULONG count, attr_list_t *out);

/*
 * C_SetAttributeValue: out = cur with tmpl applied. CKA_MODIFIABLE FALSE:
 * CKR_ACTION_PROHIBITED; an attribute that is not modifiable or a sticky
 * change (SENSITIVE TRUE->FALSE, EXTRACTABLE FALSE->TRUE, WRAP_WITH_TRUSTED
 * TRUE->FALSE): CKR_ATTRIBUTE_READ_ONLY; unknown type:
 * CKR_ATTRIBUTE_TYPE_INVALID; bad value: CKR_ATTRIBUTE_VALUE_INVALID.
 */
CK_RV attrs_set(const attr_caller_t *caller, const attr_list_t *cur,
                const CK_ATTRIBUTE *tmpl, CK_ULONG count, attr_list_t *out);

/*
 * C_GetAttributeValue, one attribute: HSM_ATTR_OK with value and len pointing
 * into the list, HSM_ATTR_SENSITIVE (footnote 7 attribute of a key that is
 * sensitive or unextractable), or HSM_ATTR_INVALID (not an attribute of this
 * object).
 */
hsm_attr_status_t attrs_read(const attr_list_t *l, CK_ATTRIBUTE_TYPE type,
                             const uint8_t **value, size_t *len);

/*
 * Checks a value the core sets on an object (a key value it computed)
 * against the schema of the object's class and key type: CKR_OK or
 * CKR_ATTRIBUTE_VALUE_INVALID (for example an AES value that is not 16, 24
 * or 32 bytes).
 */
CK_RV attrs_check_value(const attr_list_t *l, CK_ATTRIBUTE_TYPE type,
                        const void *value, size_t len);

/* CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE and CKA_DERIVE_TEMPLATE are given
 * as CK_ATTRIBUTE arrays and kept in the list as attr_list_serialize of
 * their attributes: attr_list_deserialize reads them back. */

/* Whether the value of this attribute is secret (footnote 7, or CKA_VALUE of
 * a private data object): the store keeps it sealed. */
bool attrs_is_secret(const attr_list_t *l, CK_ATTRIBUTE_TYPE type);

/*
 * Attributes fixed by the template a key was made under (the unwrapping
 * key's CKA_UNWRAP_TEMPLATE, the base key's CKA_DERIVE_TEMPLATE) stay as
 * they are for the life of the key: attrs_set and attrs_copy refuse them
 * (CKR_ATTRIBUTE_READ_ONLY). The list remembers their types in this
 * attribute of ours, stored with the object (an array of
 * CK_ATTRIBUTE_TYPE), which no application reads, sets or finds.
 */
#define ATTR_FIXED_TYPES (CKA_VENDOR_DEFINED | 0x4E42FF01UL)
/* Adds the types of the attributes in fixed to l's fixed set. */
CK_RV attrs_fix(attr_list_t *l, const attr_list_t *fixed);
/* Whether type is in l's fixed set. */
bool attrs_is_fixed(const attr_list_t *l, CK_ATTRIBUTE_TYPE type);

/* Whether every attribute of tmpl is in l with the same value (find).
 * A template naming a CKA_NIMBUS_* attribute never matches: the core takes
 * those out and matches them itself. */
bool attrs_match(const attr_list_t *l, const CK_ATTRIBUTE *tmpl,
                 CK_ULONG count);

#endif
