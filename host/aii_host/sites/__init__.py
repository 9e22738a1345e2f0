# SPDX-License-Identifier: MIT
"""Sites: gateways publish their fleets through an MQTT broker, global verifiers check
conservation across all of them (docs/fleet.md §10).

- `topics`: the topic tree; `payload`: the JSON payloads, their parsers and Ed25519 signatures;
- `broker`: MQTT URLs and MQTT 5 clients with persistent sessions (paho-mqtt);
- `chain`: the running segment hash of a node's journal (docs/ledger.md §8);
- `gateway`: `aii aggregate --mqtt URL --site NAME` publishing births, records, epoch reports;
- `verifier`: `aii verify-global`, replicas per site and node rebuilt over request/response.

Needs the `sites` extra (pip install 'aii-host[sites]'): paho-mqtt and cryptography.
"""
