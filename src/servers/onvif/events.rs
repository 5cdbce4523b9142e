//! ONVIF's event service (ver10), the PullPoint kind: a client creates a
//! subscription at `/onvif/events_service` and is given its own address
//! (`/onvif/events/pullpoint/<id>`: clients never echo WS-Addressing
//! reference parameters), where it pulls what happened, renews and
//! unsubscribes ([`super::subscriptions`] keeps them).
//!
//! The topics: `tns1:VideoSource/SignalLoss` (`State` is true while the
//! video pipeline has failed, and false once it runs again) and, with
//! `[motion]`, `tns1:VideoSource/MotionAlarm` (`State`) and
//! `tns1:RuleEngine/CellMotionDetector/Motion` (`IsMotion`), true while
//! motion goes on. A new
//! subscription (and a synchronization point) is first given the current
//! state as `Initialized`; each change after is sent as `Changed`.

use std::time::{Duration, Instant};

use super::camera::{Caller, Moment, Onvif, http_url};
use super::media::{SOURCE, SOURCE_CONFIG};
use super::soap::{Fault, Request, TEV, WSNT, esc};
use super::subscriptions::{MAX_SUBSCRIPTIONS, Notice, Pulled, Topic, Wait};
use crate::format::civil::Civil;

/// Where the event service is.
pub const EVENTS_PATH: &str = "/onvif/events_service";
/// Where subscriptions are: this, then the subscription's id.
pub const PULLPOINT_PATH: &str = "/onvif/events/pullpoint/";

/// The operations the event service answers (for the tests, which call
/// each).
#[cfg(test)]
pub(super) const OPERATIONS: [&str; 3] = [
    "GetServiceCapabilities",
    "GetEventProperties",
    "CreatePullPointSubscription",
];

/// A subscription's life when the client names none (and what a
/// PullMessages extends it by when it named a relative one).
const DEFAULT_LIFE: Duration = Duration::from_secs(600);
/// The longest life a subscription is given at a time.
const MAX_LIFE: Duration = Duration::from_secs(3600);
/// Most messages one PullMessages returns.
const MAX_MESSAGES: usize = 100;

/// The topic expression dialect of notifications (and filters read).
const CONCRETE_SET: &str = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet";

/// The id of the subscription at `path`, if it is a subscription's.
pub(super) fn pullpoint_at(path: &str) -> Option<u64> {
    let id = path.strip_prefix(PULLPOINT_PATH)?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(id, 16).ok())
        .flatten()
}

/// The body of the answer to an event service request.
pub(super) fn answer(
    camera: &Onvif,
    request: &Request,
    caller: Caller,
    moment: &Moment,
) -> Result<String, Fault> {
    let (ns, op) = request.operation();
    let body = match (ns, op) {
        (TEV, "GetServiceCapabilities") => service_capabilities(),
        (TEV, "GetEventProperties") => event_properties(camera.events.offered()),
        (TEV, "CreatePullPointSubscription") => create(camera, request, caller, moment)?,
        _ => return Err(Fault::ActionNotSupported(op.to_owned())),
    };
    Ok(format!("<tev:{op}Response>{body}</tev:{op}Response>"))
}

/// The body of the answer to subscription `id`'s request, or the wait of
/// a PullMessages that found nothing.
pub(super) fn answer_subscription(
    camera: &Onvif,
    id: u64,
    request: &Request,
    moment: &Moment,
) -> Result<Result<String, Wait>, Fault> {
    let subscriptions = &camera.events;
    let (ns, op) = request.operation();
    let body = match (ns, op) {
        (TEV, "PullMessages") => {
            let limit = request
                .arg("MessageLimit")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(MAX_MESSAGES)
                .clamp(1, MAX_MESSAGES);
            let timeout = match request.arg("Timeout") {
                Some(t) => duration(t).ok_or_else(|| bad_time("Timeout", t))?,
                None => Duration::ZERO,
            };
            match subscriptions.pull(id, moment.now, limit, timeout, request.version())? {
                Pulled::Wait(wait) => return Ok(Err(wait)),
                Pulled::Now(notices, expires) => pulled(&notices, expires, moment),
            }
        }
        (TEV, "SetSynchronizationPoint") => {
            subscriptions.synchronize(id, moment.now, moment.unix)?;
            String::new()
        }
        (WSNT, "Renew") => {
            let (life, keep_alive) = life(request.arg("TerminationTime"), moment)?;
            let expires = subscriptions.renew(id, moment.now, life, keep_alive)?;
            format!(
                "<wsnt:TerminationTime>{}</wsnt:TerminationTime><wsnt:CurrentTime>{}</wsnt:CurrentTime>",
                at(expires, moment),
                Civil::from_unix(moment.unix).xml()
            )
        }
        (WSNT, "Unsubscribe") => {
            subscriptions.unsubscribe(id, moment.now)?;
            String::new()
        }
        _ => return Err(Fault::ActionNotSupported(op.to_owned())),
    };
    let prefix = if ns == WSNT { "wsnt" } else { "tev" };
    Ok(Ok(format!(
        "<{prefix}:{op}Response>{body}</{prefix}:{op}Response>"
    )))
}

/// The answer to a PullMessages that waited (`wait`): what came, or
/// nothing.
pub(super) fn after_wait(camera: &Onvif, wait: &Wait, moment: &Moment) -> Result<String, Fault> {
    let (notices, expires) = camera.events.after_wait(wait)?;
    Ok(format!(
        "<tev:PullMessagesResponse>{}</tev:PullMessagesResponse>",
        pulled(&notices, expires, moment)
    ))
}

/// PullMessages' answer: the times, then the messages.
fn pulled(notices: &[Notice], expires: Instant, moment: &Moment) -> String {
    let mut body = format!(
        "<tev:CurrentTime>{}</tev:CurrentTime><tev:TerminationTime>{}</tev:TerminationTime>",
        Civil::from_unix(moment.unix).xml(),
        at(expires, moment)
    );
    for notice in notices {
        body.push_str(&notification(notice));
    }
    body
}

/// CreatePullPointSubscription: a new subscription, given the current
/// state first.
fn create(
    camera: &Onvif,
    request: &Request,
    caller: Caller,
    moment: &Moment,
) -> Result<String, Fault> {
    let (life, keep_alive) = life(request.arg("InitialTerminationTime"), moment)?;
    let filter = request.arg("TopicExpression");
    let (id, expires) = camera
        .events
        .create(moment.now, moment.unix, life, keep_alive, |t| {
            filter.is_none_or(|e| wants(t, e))
        })?;
    tracing::debug!(client = %caller.client, "ONVIF: event subscription {id:016x} created");
    Ok(format!(
        "<tev:SubscriptionReference><wsa:Address>{}</wsa:Address></tev:SubscriptionReference>\
         <wsnt:CurrentTime>{}</wsnt:CurrentTime><wsnt:TerminationTime>{}</wsnt:TerminationTime>",
        http_url(caller, &format!("{PULLPOINT_PATH}{id:016x}")),
        Civil::from_unix(moment.unix).xml(),
        at(expires, moment)
    ))
}

/// A subscription's life from a termination time: relative (`PT10M`, kept
/// as what PullMessages extends it by) or absolute (a time in the
/// future); the default when none is named. Capped at [`MAX_LIFE`].
fn life(text: Option<&str>, moment: &Moment) -> Result<(Duration, Option<Duration>), Fault> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok((DEFAULT_LIFE, Some(DEFAULT_LIFE)));
    };
    if text.starts_with('P') {
        let life = duration(text)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| bad_time("TerminationTime", text))?
            .min(MAX_LIFE);
        return Ok((life, Some(life)));
    }
    match Civil::parse_xml(text) {
        Some(at) if at > moment.unix => {
            Ok((Duration::from_secs(at - moment.unix).min(MAX_LIFE), None))
        }
        Some(_) => Err(Fault::InvalidArgVal(
            "UnacceptableTerminationTime",
            format!(
                "termination time {text} is not in the future (the camera's time is {})",
                Civil::from_unix(moment.unix).xml()
            ),
        )),
        None => Err(bad_time("TerminationTime", text)),
    }
}

fn bad_time(name: &str, text: &str) -> Fault {
    Fault::InvalidArgVal(
        "InvalidArgs",
        format!(
            "{name} {:?} is neither a duration (e.g. PT10M) nor a date and time",
            text.chars().take(40).collect::<String>()
        ),
    )
}

/// Monotonic time `instant` as `xs:dateTime`, by `moment`.
fn at(instant: Instant, moment: &Moment) -> String {
    let left = instant.saturating_duration_since(moment.now).as_secs();
    Civil::from_unix(moment.unix + left).xml()
}

/// Reads an `xs:duration` such as `PT600S`, `PT1M30.5S`, `P1DT2H`
/// (years and months as 365 and 30 days: a subscription is capped far
/// below either). Negative and malformed ones are `None`.
fn duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
    if (date.is_empty() && time.is_empty()) || rest.ends_with('T') {
        return None;
    }
    let mut secs = 0f64;
    for (part, units) in [
        (
            date,
            [
                ('Y', 365.0 * 86_400.0),
                ('M', 30.0 * 86_400.0),
                ('D', 86_400.0),
            ],
        ),
        (time, [('H', 3600.0), ('M', 60.0), ('S', 1.0)]),
    ] {
        let mut number = String::new();
        let mut next = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let at = units[next..].iter().position(|(u, _)| *u == c)? + next;
            let value: f64 = number.parse().ok()?;
            secs += value * units[at].1;
            number.clear();
            next = at + 1;
        }
        if !number.is_empty() {
            return None;
        }
    }
    (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

/// The topic's name (a path under `tns1:`), its source's item and
/// token, and its data item.
fn describe(topic: Topic) -> (&'static str, &'static str, &'static str, &'static str) {
    match topic {
        Topic::SignalLoss => ("VideoSource/SignalLoss", "Source", SOURCE, "State"),
        Topic::MotionAlarm => ("VideoSource/MotionAlarm", "Source", SOURCE, "State"),
        Topic::CellMotion => (
            "RuleEngine/CellMotionDetector/Motion",
            "VideoSourceConfigurationToken",
            SOURCE_CONFIG,
            "IsMotion",
        ),
    }
}

/// Whether a filter's topic expression lets `topic` through: one of its
/// `|` alternatives names it, or a topic above it with `//.` (all below
/// it), or everything.
fn wants(topic: Topic, expression: &str) -> bool {
    let name = format!("tns1:{}", describe(topic).0);
    expression.split('|').map(str::trim).any(|t| {
        t == name
            || t == "//."
            || t.strip_suffix("//.")
                .is_some_and(|above| name == above || name.starts_with(&format!("{above}/")))
    })
}

/// One `wsnt:NotificationMessage`.
fn notification(notice: &Notice) -> String {
    let (topic, source_name, source, data) = describe(notice.topic);
    format!(
        "<wsnt:NotificationMessage><wsnt:Topic Dialect=\"{CONCRETE_SET}\">tns1:{topic}</wsnt:Topic>\
         <wsnt:Message><tt:Message UtcTime=\"{}\" PropertyOperation=\"{}\"><tt:Source>\
         <tt:SimpleItem Name=\"{source_name}\" Value=\"{}\"/></tt:Source><tt:Data>\
         <tt:SimpleItem Name=\"{data}\" Value=\"{}\"/></tt:Data></tt:Message></wsnt:Message>\
         </wsnt:NotificationMessage>",
        Civil::from_unix(notice.utc).xml(),
        if notice.initial {
            "Initialized"
        } else {
            "Changed"
        },
        esc(source),
        notice.state
    )
}

/// The event service's `tev:Capabilities`.
pub(super) fn service_capabilities() -> String {
    format!(
        "<tev:Capabilities WSSubscriptionPolicySupport=\"false\" WSPullPointSupport=\"true\" \
         WSPausableSubscriptionManagerInterfaceSupport=\"false\" MaxNotificationProducers=\"0\" \
         MaxPullPoints=\"{MAX_SUBSCRIPTIONS}\" PersistentNotificationStorage=\"false\"/>"
    )
}

/// GetEventProperties: the topics offered and how their messages look.
fn event_properties(topics: &[Topic]) -> String {
    let mut video_source = String::new();
    let mut rule_engine = String::new();
    for &topic in topics {
        let (name, source_name, _, data) = describe(topic);
        let leaf = name.rsplit('/').next().unwrap_or_default();
        let element = format!(
            "<tns1:{leaf} wstop:topic=\"true\"><tt:MessageDescription IsProperty=\"true\">\
             <tt:Source><tt:SimpleItemDescription Name=\"{source_name}\" \
             Type=\"tt:ReferenceToken\"/></tt:Source><tt:Data>\
             <tt:SimpleItemDescription Name=\"{data}\" Type=\"xs:boolean\"/></tt:Data>\
             </tt:MessageDescription></tns1:{leaf}>"
        );
        match topic {
            Topic::SignalLoss | Topic::MotionAlarm => video_source.push_str(&element),
            Topic::CellMotion => rule_engine.push_str(&format!(
                "<tns1:CellMotionDetector>{element}</tns1:CellMotionDetector>"
            )),
        }
    }
    let mut set = format!("<tns1:VideoSource>{video_source}</tns1:VideoSource>");
    if !rule_engine.is_empty() {
        set.push_str(&format!("<tns1:RuleEngine>{rule_engine}</tns1:RuleEngine>"));
    }
    format!(
        "<tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml\
         </tev:TopicNamespaceLocation><wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>\
         <wstop:TopicSet>{set}</wstop:TopicSet>\
         <wsnt:TopicExpressionDialect>{CONCRETE_SET}</wsnt:TopicExpressionDialect>\
         <wsnt:TopicExpressionDialect>http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete\
         </wsnt:TopicExpressionDialect>\
         <tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter\
         </tev:MessageContentFilterDialect>\
         <tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd\
         </tev:MessageContentSchemaLocation>"
    )
}

#[cfg(test)]
mod tests {
    use super::super::soap::tests::zeep_request;
    use super::super::tests::{caller, camera, moment};
    use super::super::{Reply, Service};
    use super::*;

    /// The signal-loss topic, as clients match it.
    const SIGNAL_LOSS: &str = "tns1:VideoSource/SignalLoss";

    /// `op` of namespace `ns` with inner XML `args`, as Home Assistant's
    /// client sends it, to `service` at `moment`.
    fn send(camera: &Onvif, service: Service, ns: &str, op: &str, args: &str, m: &Moment) -> Reply {
        let body = zeep_request(&format!("<o:{op} xmlns:o=\"{ns}\">{args}</o:{op}>"), None);
        camera.respond(service, &body, caller(), None, m)
    }

    fn now(reply: Reply) -> String {
        match reply {
            Reply::Now(answer) => answer.xml,
            Reply::Wait(wait) => panic!("waits: {wait:?}"),
        }
    }

    /// Creates a subscription (`args`: its request's); its id.
    fn subscribe(camera: &Onvif, args: &str, m: &Moment) -> u64 {
        let xml = now(send(
            camera,
            Service::Events,
            TEV,
            "CreatePullPointSubscription",
            args,
            m,
        ));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let address = doc
            .descendants()
            .find(|n| n.has_tag_name("Address"))
            .and_then(|n| n.text())
            .unwrap_or_else(|| panic!("{xml}"));
        let path = address
            .strip_prefix("http://192.0.2.1:8080")
            .unwrap_or_else(|| panic!("{address}"));
        pullpoint_at(path).unwrap_or_else(|| panic!("{path}"))
    }

    /// The (state, operation) of each message a PullMessages answer has.
    fn messages(xml: &str) -> Vec<(String, String)> {
        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        doc.descendants()
            .filter(|n| n.has_tag_name("NotificationMessage"))
            .map(|n| {
                let topic = n.descendants().find(|t| t.has_tag_name("Topic")).unwrap();
                assert_eq!(topic.text(), Some(SIGNAL_LOSS));
                let message = n
                    .descendants()
                    .find(|t| t.has_tag_name((super::super::soap::TT, "Message")))
                    .unwrap();
                let state = message
                    .descendants()
                    .find(|t| t.attribute("Name") == Some("State"))
                    .and_then(|t| t.attribute("Value"))
                    .unwrap();
                (
                    state.to_owned(),
                    message.attribute("PropertyOperation").unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn pull(camera: &Onvif, id: u64, args: &str, m: &Moment) -> Reply {
        send(
            camera,
            Service::Subscription(id),
            TEV,
            "PullMessages",
            args,
            m,
        )
    }

    fn pair(state: &str, op: &str) -> (String, String) {
        (state.into(), op.into())
    }

    #[test]
    fn a_subscription_is_told_the_state_then_each_change_until_it_ends() {
        let camera = camera(false);
        let m = moment();
        let id = subscribe(
            &camera,
            "<o:InitialTerminationTime>PT600S</o:InitialTerminationTime>",
            &m,
        );
        let xml = now(pull(
            &camera,
            id,
            "<o:Timeout>PT0S</o:Timeout><o:MessageLimit>10</o:MessageLimit>",
            &m,
        ));
        assert_eq!(messages(&xml), [pair("false", "Initialized")], "{xml}");
        // 2026-12-07T13:25:09Z + 600 s.
        assert!(
            xml.contains("<tev:TerminationTime>2026-12-07T13:35:09Z</tev:TerminationTime>"),
            "{xml}"
        );
        camera.events.set(Topic::SignalLoss, true, m.unix + 5);
        camera.events.set(Topic::SignalLoss, true, m.unix + 6);
        camera.events.set(Topic::SignalLoss, false, m.unix + 9);
        let xml = now(pull(
            &camera,
            id,
            "<o:Timeout>PT1M</o:Timeout><o:MessageLimit>1</o:MessageLimit>",
            &m,
        ));
        assert_eq!(messages(&xml), [pair("true", "Changed")], "{xml}");
        assert!(xml.contains("UtcTime=\"2026-12-07T13:25:14Z\""), "{xml}");
        let xml = now(pull(
            &camera,
            id,
            "<o:Timeout>PT1M</o:Timeout><o:MessageLimit>5</o:MessageLimit>",
            &m,
        ));
        assert_eq!(messages(&xml), [pair("false", "Changed")], "{xml}");
        // A synchronization point: the state again.
        now(send(
            &camera,
            Service::Subscription(id),
            TEV,
            "SetSynchronizationPoint",
            "",
            &m,
        ));
        let xml = now(pull(&camera, id, "<o:Timeout>PT0S</o:Timeout>", &m));
        assert_eq!(messages(&xml), [pair("false", "Initialized")], "{xml}");
        // Renewed with an absolute time.
        let xml = now(send(
            &camera,
            Service::Subscription(id),
            WSNT,
            "Renew",
            "<o:TerminationTime>2026-12-07T13:45:09Z</o:TerminationTime>",
            &m,
        ));
        assert!(
            xml.contains("<wsnt:RenewResponse><wsnt:TerminationTime>2026-12-07T13:45:09Z</wsnt:TerminationTime>"),
            "{xml}"
        );
        let xml = now(send(
            &camera,
            Service::Subscription(id),
            WSNT,
            "Unsubscribe",
            "",
            &m,
        ));
        assert!(
            xml.contains("<wsnt:UnsubscribeResponse></wsnt:UnsubscribeResponse>"),
            "{xml}"
        );
        assert_eq!(camera.events.count(), 0);
        let xml = now(pull(&camera, id, "<o:Timeout>PT1M</o:Timeout>", &m));
        assert!(xml.contains("ter:NoSubscription"), "{xml}");
    }

    #[test]
    fn subscriptions_expire_unless_pulled_and_are_few() {
        let camera = camera(false);
        let m = moment();
        let later = |secs| Moment {
            now: m.now + Duration::from_secs(secs),
            unix: m.unix + secs,
            ..moment()
        };
        let kept = subscribe(
            &camera,
            "<o:InitialTerminationTime>PT10S</o:InitialTerminationTime>",
            &m,
        );
        let fixed = subscribe(
            &camera,
            "<o:InitialTerminationTime>2026-12-07T13:25:19Z</o:InitialTerminationTime>",
            &m,
        );
        // Pulled at 8 s: a relative life starts again (so it is there at 15, and
        // then lives to 25), an absolute one does not.
        for id in [kept, fixed] {
            now(pull(&camera, id, "", &later(8)));
        }
        let xml = now(pull(&camera, kept, "", &later(15)));
        assert!(
            xml.contains("<tev:TerminationTime>2026-12-07T13:25:34Z"),
            "{xml}"
        );
        let xml = now(pull(&camera, fixed, "", &later(15)));
        assert!(xml.contains("ter:NoSubscription"), "{xml}");
        // A time in the past, or no time at all, is refused.
        for bad in ["2026-12-07T13:00:00Z", "soon", "PT0S", "-PT5S", "P"] {
            let args = format!("<o:InitialTerminationTime>{bad}</o:InitialTerminationTime>");
            let reply = send(
                &camera,
                Service::Events,
                TEV,
                "CreatePullPointSubscription",
                &args,
                &m,
            );
            let xml = now(reply);
            assert!(xml.contains("ter:InvalidArgVal"), "{bad}: {xml}");
        }
        // At most MAX_SUBSCRIPTIONS: the one left and 15 more, then no more.
        for _ in 1..MAX_SUBSCRIPTIONS {
            subscribe(&camera, "", &later(15));
        }
        let xml = now(send(
            &camera,
            Service::Events,
            TEV,
            "CreatePullPointSubscription",
            "",
            &later(15),
        ));
        assert!(xml.contains("ter:MaxPullPoints"), "{xml}");
        // Ten minutes on (the default life), room again.
        subscribe(&camera, "", &later(15 + 601));
        assert_eq!(camera.events.count(), 1);
    }

    #[test]
    fn when_full_the_longest_idle_subscription_makes_room() {
        let camera = camera(false);
        let m = moment();
        let later = |secs| Moment {
            now: m.now + Duration::from_secs(secs),
            unix: m.unix + secs,
            ..moment()
        };
        let first = subscribe(&camera, "", &m);
        for _ in 1..MAX_SUBSCRIPTIONS {
            subscribe(&camera, "", &later(60));
        }
        let create = |at| {
            now(send(
                &camera,
                Service::Events,
                TEV,
                "CreatePullPointSubscription",
                "",
                &later(at),
            ))
        };
        // Not pulled for 100 s: not idle yet.
        assert!(create(100).contains("ter:MaxPullPoints"));
        // 125 s: the first is idle and goes; the others (65 s) stay.
        assert!(!create(125).contains("Fault"));
        assert_eq!(camera.events.count(), MAX_SUBSCRIPTIONS);
        let xml = now(pull(&camera, first, "", &later(125)));
        assert!(xml.contains("ter:NoSubscription"), "{xml}");
    }

    #[test]
    fn a_filter_without_the_topic_gets_nothing() {
        let camera = camera(false);
        let m = moment();
        let filter = |topic: &str| {
            format!(
                "<o:Filter><wsnt:TopicExpression xmlns:wsnt=\"{WSNT}\" \
                 Dialect=\"{CONCRETE_SET}\">{topic}</wsnt:TopicExpression></o:Filter>"
            )
        };
        let motion = subscribe(&camera, &filter("tns1:VideoSource/MotionAlarm"), &m);
        let all = subscribe(
            &camera,
            &filter("tns1:RuleEngine//.|tns1:VideoSource//."),
            &m,
        );
        camera.events.set(Topic::SignalLoss, true, m.unix);
        let xml = now(pull(&camera, motion, "", &m));
        assert!(messages(&xml).is_empty(), "{xml}");
        let xml = now(pull(&camera, all, "", &m));
        assert_eq!(
            messages(&xml),
            [pair("false", "Initialized"), pair("true", "Changed")]
        );
    }

    #[tokio::test]
    async fn a_pull_waits_for_a_change_and_a_newer_pull_ends_it() {
        let camera = std::sync::Arc::new(camera(false));
        let m = moment();
        let id = subscribe(&camera, "", &m);
        now(pull(&camera, id, "", &m));
        let Reply::Wait(wait) = pull(&camera, id, "<o:Timeout>PT1M</o:Timeout>", &m) else {
            panic!("answered at once");
        };
        assert!(wait.until >= m.now + Duration::from_secs(59));
        let waiting = {
            let camera = std::sync::Arc::clone(&camera);
            tokio::spawn(async move {
                camera.events.wait(&wait).await;
                camera.pulled(&wait, &moment())
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        camera.events.set(Topic::SignalLoss, true, m.unix);
        let answer = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .expect("the change ends the wait")
            .unwrap();
        assert_eq!(messages(&answer.xml), [pair("true", "Changed")]);
        // Two pulls: the second ends the first's wait, with nothing.
        let Reply::Wait(first) = pull(&camera, id, "<o:Timeout>PT1M</o:Timeout>", &m) else {
            panic!("answered at once");
        };
        let Reply::Wait(_second) = pull(&camera, id, "<o:Timeout>PT1M</o:Timeout>", &m) else {
            panic!("answered at once");
        };
        tokio::time::timeout(Duration::from_secs(20), camera.events.wait(&first))
            .await
            .expect("a newer pull ends the wait");
        assert!(messages(&camera.pulled(&first, &m).xml).is_empty());
        // The wait's own time: a short one passes.
        let Reply::Wait(short) = pull(&camera, id, "<o:Timeout>PT0.2S</o:Timeout>", &moment())
        else {
            panic!("answered at once");
        };
        tokio::time::timeout(Duration::from_secs(20), camera.events.wait(&short))
            .await
            .expect("the wait ends at its time");
    }

    /// (topic, value of its data item, operation) of each message.
    fn all_messages(xml: &str) -> Vec<(String, String, String)> {
        let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
        doc.descendants()
            .filter(|n| n.has_tag_name("NotificationMessage"))
            .map(|n| {
                let text = |name: &str| {
                    n.descendants()
                        .find(|t| t.has_tag_name(name))
                        .and_then(|t| t.text())
                        .unwrap_or_default()
                        .to_owned()
                };
                let data = n.descendants().find(|t| t.has_tag_name("Data")).unwrap();
                let item = data.first_element_child().unwrap();
                let message = n
                    .descendants()
                    .find(|t| t.has_tag_name((super::super::soap::TT, "Message")))
                    .unwrap();
                (
                    text("Topic"),
                    format!(
                        "{}={}",
                        item.attribute("Name").unwrap(),
                        item.attribute("Value").unwrap()
                    ),
                    message.attribute("PropertyOperation").unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn with_motion_on_both_motion_topics_say_it() {
        let m = moment();
        let triple = |t: &str, v: &str, o: &str| (t.to_owned(), v.to_owned(), o.to_owned());
        // Without [motion], no motion topic is offered.
        let plain = camera(false);
        let xml = now(send(
            &plain,
            Service::Events,
            TEV,
            "GetEventProperties",
            "",
            &m,
        ));
        assert!(
            xml.contains("<tns1:SignalLoss") && !xml.contains("Motion"),
            "{xml}"
        );
        let camera = super::super::tests::camera_of("[onvif]\n[motion]\n");
        let xml = now(send(
            &camera,
            Service::Events,
            TEV,
            "GetEventProperties",
            "",
            &m,
        ));
        assert!(
            xml.contains("<tns1:MotionAlarm wstop:topic=\"true\">")
                && xml.contains(
                    "<tns1:RuleEngine><tns1:CellMotionDetector><tns1:Motion wstop:topic=\"true\">"
                ),
            "{xml}"
        );
        let all = subscribe(&camera, "", &m);
        let rules = subscribe(
            &camera,
            &format!(
                "<o:Filter><wsnt:TopicExpression xmlns:wsnt=\"{WSNT}\" \
                 Dialect=\"{CONCRETE_SET}\">tns1:RuleEngine//.</wsnt:TopicExpression></o:Filter>"
            ),
            &m,
        );
        let xml = now(pull(&camera, all, "", &m));
        assert_eq!(
            all_messages(&xml),
            [
                triple("tns1:VideoSource/SignalLoss", "State=false", "Initialized"),
                triple("tns1:VideoSource/MotionAlarm", "State=false", "Initialized"),
                triple(
                    "tns1:RuleEngine/CellMotionDetector/Motion",
                    "IsMotion=false",
                    "Initialized"
                ),
            ]
        );
        camera.events.set(Topic::MotionAlarm, true, m.unix);
        camera.events.set(Topic::CellMotion, true, m.unix);
        let xml = now(pull(&camera, all, "", &m));
        assert_eq!(
            all_messages(&xml),
            [
                triple("tns1:VideoSource/MotionAlarm", "State=true", "Changed"),
                triple(
                    "tns1:RuleEngine/CellMotionDetector/Motion",
                    "IsMotion=true",
                    "Changed"
                ),
            ]
        );
        assert!(
            xml.contains("Name=\"VideoSourceConfigurationToken\" Value=\"source\""),
            "{xml}"
        );
        let xml = now(pull(&camera, rules, "", &m));
        assert_eq!(
            all_messages(&xml),
            [
                triple(
                    "tns1:RuleEngine/CellMotionDetector/Motion",
                    "IsMotion=false",
                    "Initialized"
                ),
                triple(
                    "tns1:RuleEngine/CellMotionDetector/Motion",
                    "IsMotion=true",
                    "Changed"
                ),
            ]
        );
    }

    #[test]
    fn durations_are_read_as_xml_schema_writes_them() {
        let secs = |t| duration(t).map(|d| d.as_secs_f64());
        assert_eq!(secs("PT600S"), Some(600.0));
        assert_eq!(secs("PT10M"), Some(600.0));
        assert_eq!(secs("PT1M30.5S"), Some(90.5));
        assert_eq!(secs("P1DT1H"), Some(90_000.0));
        assert_eq!(secs("P0Y0M0DT0H1M0S"), Some(60.0));
        assert_eq!(secs(" PT5S "), Some(5.0));
        for bad in [
            "", "P", "PT", "600", "PT5", "PTS", "PT5M5H", "P1H", "-PT5S", "PT1.2.3S",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
        assert_eq!(
            pullpoint_at("/onvif/events/pullpoint/00000000000000ff"),
            Some(255)
        );
        assert_eq!(pullpoint_at("/onvif/events/pullpoint/ff"), None);
        assert_eq!(pullpoint_at("/onvif/events/pullpoint/"), None);
    }
}
