//! A DNS server on 127.0.0.1 (UDP) whose answers the test changes while it runs: A records
//! with a chosen TTL for the names it knows, SERVFAIL when told to fail, NXDOMAIN otherwise.
//! It counts the A queries it answers, so tests see when the gateway asked again.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Zone {
    /// name (lowercase, no trailing dot) → (addresses, TTL in seconds)
    records: HashMap<String, (Vec<Ipv4Addr>, u32)>,
    failing: bool,
    a_queries: HashMap<String, usize>,
}

pub struct DnsServer {
    pub address: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    task: JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let zone = Arc::new(Mutex::new(Zone::default()));
        let task = tokio::spawn(serve(socket, Arc::clone(&zone)));
        DnsServer {
            address,
            zone,
            task,
        }
    }

    /// From now on `name` answers `addresses` with `ttl` seconds.
    pub fn set(&self, name: &str, addresses: &[Ipv4Addr], ttl: u32) {
        let mut zone = self.zone.lock().unwrap();
        zone.records
            .insert(name.to_owned(), (addresses.to_vec(), ttl));
        zone.failing = false;
    }

    /// Every query gets SERVFAIL until the next [`DnsServer::set`].
    pub fn fail(&self) {
        self.zone.lock().unwrap().failing = true;
    }

    /// A queries for `name` seen so far (answered or failed).
    pub fn a_queries(&self, name: &str) -> usize {
        self.zone
            .lock()
            .unwrap()
            .a_queries
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(socket: UdpSocket, zone: Arc<Mutex<Zone>>) {
    let mut buffer = [0u8; 1500];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
            return;
        };
        let Ok(query) = Message::from_vec(&buffer[..n]) else {
            continue;
        };
        let reply = answer(&query, &zone);
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

fn answer(query: &Message, zone: &Mutex<Zone>) -> Message {
    let mut reply = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    reply.queries = query.queries.clone();
    let Some(question) = query.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    };
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut zone = zone.lock().unwrap();
    if question.query_type() == RecordType::A {
        *zone.a_queries.entry(name.clone()).or_default() += 1;
    }
    if zone.failing {
        reply.metadata.response_code = ResponseCode::ServFail;
        return reply;
    }
    let Some((addresses, ttl)) = zone.records.get(&name) else {
        reply.metadata.response_code = ResponseCode::NXDomain;
        return reply;
    };
    // AAAA (and anything else) for a known name: no records, no error.
    if question.query_type() == RecordType::A {
        for address in addresses {
            reply.answers.push(Record::from_rdata(
                question.name().clone(),
                *ttl,
                RData::A(A(*address)),
            ));
        }
    }
    reply
}
