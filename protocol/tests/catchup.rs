//! Catch-up segments: an honest run of finalized blocks is accepted with a
//! checked commit proof per block and the certified root of each; every
//! way of lying about it is refused.

use plume_crypto::bls;
use plume_crypto::ed25519::SigningKey;
use plume_crypto::qc::{Validator, ValidatorSet, VoteAggregator};
use plume_crypto::Digest;
use plume_protocol::batch::{digest_from_root, item_leaf, items_root};
use plume_protocol::calls::Transfer;
use plume_protocol::catchup::{verify_segment, SegmentBlock, COMMIT_POINT_SPACING};
use plume_protocol::consensus::{Block, QuorumCert, STATE_LAG};
use plume_protocol::proof::{encode_block_record, BatchRecord, PROOF_CHAIN_MAX};
use plume_protocol::tx::NATIVE_ASSET;
use plume_protocol::{BlsScheme, Transaction, TxBody};
use rand::SeedableRng;

const CHAIN: u64 = 77;
/// The block carrying transactions.
const TX_HEIGHT: u64 = 3;

fn root_of(h: u64) -> Digest {
    plume_crypto::hash(plume_crypto::Domain::Block, &h.to_le_bytes())
}

fn tx(n: u8) -> Transaction {
    let sk = SigningKey::from_bytes(&[n; 32]);
    let mut b = TxBody::for_call(Transfer {
        asset: NATIVE_ASSET,
        to: [0x22; 32],
        amount: 5,
    });
    b.chain_id = "plume-test".into();
    b.signers = vec![sk.public_key().to_bytes()];
    b.gas_limit = 1_000_000;
    b.max_fee_per_gas = 100;
    b.expiry_height = 1_000;
    Transaction::sign(b, &[&sk])
}

struct Fixture {
    sks: Vec<bls::SecretKey>,
    set: ValidatorSet,
    genesis: Block<BlsScheme>,
    blocks: Vec<Block<BlsScheme>>,
    batch: BatchRecord,
    raws: Vec<Vec<u8>>,
}

fn sign_qc(
    sks: &[bls::SecretKey],
    set: &ValidatorSet,
    chain: u64,
    b: &Block<BlsScheme>,
) -> QuorumCert<BlsScheme> {
    let msg = QuorumCert::<BlsScheme>::vote_message(chain, 0, b.view, &b.id, b.height);
    let mut agg = VoteAggregator::new(set, msg.as_bytes());
    for (i, k) in sks.iter().enumerate().take(3) {
        agg.add(i, k.sign(msg.as_bytes())).unwrap();
    }
    QuorumCert {
        epoch: 0,
        view: b.view,
        block: b.id,
        height: b.height,
        cert: Some(agg.finish().unwrap()),
    }
}

/// `n` blocks above genesis in consecutive views (each a commit point but
/// the last two); block TX_HEIGHT carries one batch of three items, the
/// first two executed, the third with a bad signature.
fn fixture(n: u64) -> Fixture {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let sks: Vec<bls::SecretKey> = (0..4).map(|_| bls::SecretKey::generate(&mut rng)).collect();
    let set = ValidatorSet::new_pop_checked(
        sks.iter()
            .map(|k| Validator {
                key: k.public_key(),
                power: 1,
            })
            .collect(),
    )
    .unwrap();
    let mut bad = tx(3);
    bad.signatures[0][5] ^= 1;
    let raws = vec![tx(1).to_bytes(), tx(2).to_bytes(), bad.to_bytes()];
    let leaves: Vec<Digest> = raws.iter().map(|r| item_leaf(r)).collect();
    let batch = BatchRecord {
        author: 1,
        expires: 100,
        leaves: leaves.clone(),
    };
    let batch_digest = digest_from_root(1, 100, 3, &items_root(&leaves));
    let genesis = Block::<BlsScheme>::genesis(CHAIN);
    let mut qc = QuorumCert::genesis(0, &genesis);
    let mut blocks = Vec::new();
    for h in 1..=n {
        let payload = if h == TX_HEIGHT {
            vec![batch_digest]
        } else {
            vec![]
        };
        let b = Block::new(0, h, (h % 4) as u32, payload, qc.clone())
            .with_state_root(root_of(h.saturating_sub(STATE_LAG)));
        qc = sign_qc(&sks, &set, CHAIN, &b);
        blocks.push(b);
    }
    Fixture {
        sks,
        set,
        genesis,
        blocks,
        batch,
        raws,
    }
}

impl Fixture {
    fn segment(&self) -> Vec<SegmentBlock> {
        self.blocks
            .iter()
            .map(|b| {
                if b.height == TX_HEIGHT {
                    let ids: Vec<Digest> = self.raws[..2]
                        .iter()
                        .map(|r| Transaction::from_bytes(r).unwrap().body.signing_hash())
                        .collect();
                    SegmentBlock {
                        record: encode_block_record(
                            b,
                            std::slice::from_ref(&self.batch),
                            &Digest::ZERO,
                            &ids,
                        ),
                        txs: self.raws[..2].to_vec(),
                    }
                } else {
                    SegmentBlock {
                        record: encode_block_record(b, &[], &Digest::ZERO, &[]),
                        txs: vec![],
                    }
                }
            })
            .collect()
    }

    fn verify(
        &self,
        seg: &[SegmentBlock],
    ) -> Result<Vec<plume_protocol::catchup::VerifiedBlock>, String> {
        verify_segment(seg, 0, &self.genesis.id, &self.set, CHAIN).map_err(|e| e.to_string())
    }
}

#[test]
fn an_honest_segment_yields_final_blocks_with_their_certified_roots_and_proofs() {
    let f = fixture(80);
    let out = f.verify(&f.segment()).expect("honest");
    // Final: up to the highest commit point (two blocks below the top);
    // executable: those whose certified root is final too.
    assert_eq!(out.len() as u64, 80 - 2 - STATE_LAG);
    for (i, vb) in out.iter().enumerate() {
        let h = i as u64 + 1;
        assert_eq!(vb.block.height, h);
        assert_eq!(vb.certified_root, root_of(h), "the root block h+8 carries");
        let committed = vb
            .proof
            .verify_direct(&f.set, CHAIN)
            .expect("a checked proof");
        let ch = vb.proof.child.height - 1;
        assert!(
            ch >= h && ((ch - h) as usize) < PROOF_CHAIN_MAX,
            "proof of {ch} for {h}"
        );
        assert!(((ch - h) as usize) < COMMIT_POINT_SPACING);
        assert!(
            ch <= out.len() as u64,
            "the proof of {h} names block {ch}, above the executed {}",
            out.len()
        );
        let _ = committed;
    }
    // The server's light read of a record names the same transactions.
    for sb in f.segment() {
        let full = plume_protocol::proof::decode_block_record(&sb.record).unwrap();
        assert_eq!(
            plume_protocol::proof::record_tx_ids(&sb.record).unwrap(),
            full.txs
        );
    }
    let with_txs = &out[TX_HEIGHT as usize - 1];
    assert_eq!(with_txs.txs.len(), 2);
    assert_eq!(with_txs.txs[0].1, f.raws[0]);
    // Asked before our tip moved: the blocks we committed meanwhile are
    // skipped, the rest must extend our new tip.
    let later = verify_segment(&f.segment(), 2, &f.blocks[1].id, &f.set, CHAIN).unwrap();
    assert_eq!(later[0].block.height, 3);
    assert_eq!(later.len(), out.len() - 2);
    assert!(verify_segment(&f.segment(), 2, &f.blocks[0].id, &f.set, CHAIN).is_err());
    // Too short to certify any state: nothing to execute, no error.
    assert!(f
        .verify(&f.segment()[..STATE_LAG as usize + 1])
        .unwrap()
        .is_empty());
}

#[test]
fn every_lie_in_a_segment_is_refused() {
    let f = fixture(40);
    let honest = f.segment();
    let refused = |seg: &[SegmentBlock], what: &str, why: &str| {
        let e = f.verify(seg).expect_err(what);
        assert!(e.contains(why), "{what}: {e}");
    };
    // Not starting on our tip.
    refused(&honest[1..], "a gap", "does not extend");
    // A block swapped for another at the same height (a fork).
    let mut seg = honest.clone();
    let other = Block::new(0, 5, 2, vec![Digest([9; 32])], f.blocks[3].justify.clone())
        .with_state_root(root_of(0));
    seg[4].record = encode_block_record(&other, &[], &Digest::ZERO, &[]);
    refused(&seg, "a fork block", "does not extend");
    // The top commit point's certificate from another chain (same keys).
    let mut blocks = f.blocks.clone();
    let top = blocks.len() - 1;
    let forged = sign_qc(&f.sks, &f.set, CHAIN + 1, &blocks[top - 1]);
    blocks[top] =
        Block::new(0, blocks[top].view, 0, vec![], forged).with_state_root(blocks[top].state_root);
    let mut seg = honest.clone();
    seg[top].record = encode_block_record(&blocks[top], &[], &Digest::ZERO, &[]);
    refused(&seg, "a certificate of another chain", "does not verify");
    // A transaction that is in none of the block's batches.
    let i = TX_HEIGHT as usize - 1;
    let mut seg = honest.clone();
    let stranger = tx(9);
    let mut rec = plume_protocol::proof::decode_block_record(&seg[i].record).unwrap();
    rec.txs[1] = stranger.body.signing_hash();
    seg[i].record = encode_block_record(&rec.block, &rec.batches, &Digest::ZERO, &rec.txs);
    seg[i].txs[1] = stranger.to_bytes();
    refused(&seg, "a foreign transaction", "in none of its batches");
    // Bytes that are not the transaction the record names.
    let mut seg = honest.clone();
    seg[i].txs.swap(0, 1);
    refused(&seg, "swapped bytes", "are not");
    // The batch item whose signature failed, listed as executed.
    let mut seg = honest.clone();
    let bad = Transaction::from_bytes(&f.raws[2]).unwrap();
    rec.txs = vec![bad.body.signing_hash()];
    seg[i].record = encode_block_record(&rec.block, &rec.batches, &Digest::ZERO, &rec.txs);
    seg[i].txs = vec![f.raws[2].clone()];
    refused(&seg, "a transaction with a bad signature", "bad signature");
    // A batch record that is not the batch the block names.
    let mut seg = honest.clone();
    let mut batch = f.batch.clone();
    batch.leaves.pop();
    let rec = plume_protocol::proof::decode_block_record(&seg[i].record).unwrap();
    seg[i].record = encode_block_record(&rec.block, &[batch], &Digest::ZERO, &rec.txs);
    refused(&seg, "a forged batch record", "does not match its digest");
    // A justify naming another block or height (neither is in the id).
    let mut seg = honest.clone();
    let mut b = f.blocks[9].clone();
    b.justify.height += 1;
    assert_eq!(b.compute_id(), b.id, "the id does not cover it");
    seg[9].record = encode_block_record(&b, &[], &Digest::ZERO, &[]);
    refused(&seg, "a justify of another height", "does not extend");
    // Fewer transaction bytes than the record lists.
    let mut seg = honest.clone();
    seg[i].txs.pop();
    refused(&seg, "a missing transaction", "transactions but");
    // Bytes that do not decode.
    let mut seg = honest;
    seg[7].record.truncate(20);
    assert!(f.verify(&seg).is_err(), "a truncated record");
}
