//! What the local fakes of other companies' APIs share: a server of their routes on a free
//! loopback port, in a thread of its own, living as long as the test process.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpServer, web};

/// Serves `routes` with `state` as their app data; the base URL.
pub(crate) fn serve<S: Send + 'static>(
    state: Arc<Mutex<S>>,
    workers: usize,
    routes: fn(&mut web::ServiceConfig),
) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let data = web::Data::from(state);
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
                .workers(workers)
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("a fake server runs");
        });
    });
    format!("http://127.0.0.1:{port}")
}
